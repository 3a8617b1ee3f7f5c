"""Hunt-as-code: threat hunts written as YAML files, loaded, scheduled, run and kept with their results."""
