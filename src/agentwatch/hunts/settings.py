"""Settings of the hunt-as-code capability (``[hunts]`` in the config file, ``AGENTWATCH_HUNTS__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class HuntSettings(BaseModel):
    enabled: bool = Field(True, description="load the hunt definitions and run the scheduled ones")
    directory: Path | None = Field(
        None, description="folder of hunt definitions (*.yml, *.yaml); default: <data_dir>/hunts"
    )
    tick_s: float = Field(
        15.0, gt=0, le=3600, description="how often the folder is checked for changed files and due hunts"
    )
    min_interval_s: float = Field(
        60.0, ge=1, le=86_400, description="shortest schedule interval a definition may ask for"
    )
    default_window_s: float = Field(
        86_400.0, ge=60, le=90 * 86_400, description="how far back a hunt without a window searches"
    )
    run_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="a run still going after this stops with an error (checked between pages)"
    )
    max_concurrent: int = Field(2, ge=1, le=32, description="hunts running at once on one node")
    max_scan: int = Field(5_000, ge=1, le=100_000, description="events of a hunt's query read per run (newest first)")
    max_ids: int = Field(100, ge=1, le=1000, description="matched event ids and entities kept with each run")
    history: int = Field(50, ge=1, le=10_000, description="runs kept per hunt (older ones are deleted)")
    max_files: int = Field(500, ge=1, le=10_000, description="definition files read; the rest are reported")
    max_file_bytes: int = Field(64 * 1024, ge=1024, le=4 * 1024 * 1024, description="largest definition file read")

    def folder(self, data_dir: Path) -> Path:
        return self.directory if self.directory is not None else data_dir / "hunts"
