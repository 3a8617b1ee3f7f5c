"""Deterministic Sysmon process-creation events for the benchmark: matching and benign.

Matching events are the SigmaHQ regression samples of process-creation rules (real
attack traces); benign events are built from templates of everyday Windows and
developer processes with randomised arguments, paths, ids and hashes. Every event is
a flat field map as Zircolite would load it (``EventData`` plus ``EventID`` and
``Channel``).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

PROGRAMS = [
    ("C:\\Windows\\System32\\svchost.exe", "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k {svc} -p -s {name}"),
    ("C:\\Windows\\System32\\conhost.exe", "CONHOST.EXE", "\\??\\C:\\Windows\\system32\\conhost.exe 0x{hex}"),
    ("C:\\Windows\\explorer.exe", "EXPLORER.EXE", "C:\\Windows\\Explorer.EXE"),
    (
        "C:\\Windows\\System32\\RuntimeBroker.exe",
        "RuntimeBroker.exe",
        "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",
    ),
    ("C:\\Windows\\System32\\dllhost.exe", "dllhost.exe", "C:\\Windows\\system32\\DllHost.exe /Processid:{{{guid}}}"),
    ("C:\\Windows\\System32\\taskhostw.exe", "taskhostw.exe", "taskhostw.exe {name}"),
    (
        "C:\\Windows\\System32\\SearchProtocolHost.exe",
        "SearchProtocolHost.exe",
        '"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe{n}_ Global\\UsGthrCtrlFltPipeMssGthrPipe{n} 1 -2147483646',
    ),
    (
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        "chrome.exe",
        '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer --lang=en-US --renderer-client-id={n} --field-trial-handle={n},i,{hex},{hex},262144 /prefetch:1',
    ),
    (
        "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
        "msedge.exe",
        '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" --type=utility --utility-sub-type=network.mojom.NetworkService --lang=en-US --mojo-platform-channel-handle={n} /prefetch:3',
    ),
    (
        "C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
        "electron.exe",
        '"C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe" --type=gpu-process --field-trial-handle={n} /prefetch:2',
    ),
    ("C:\\Program Files\\Git\\cmd\\git.exe", "git.exe", "git -c core.quotepath=false fetch --progress --prune origin"),
    ("C:\\Program Files\\Git\\mingw64\\bin\\git.exe", "git.exe", "git.exe status -z -uall --porcelain"),
    (
        "C:\\Users\\{user}\\AppData\\Local\\Programs\\Python\\Python311\\python.exe",
        "python.exe",
        "python -m pytest tests/unit -q -k {name}",
    ),
    (
        "C:\\Program Files\\nodejs\\node.exe",
        "node.exe",
        'node "C:\\Users\\{user}\\repo\\node_modules\\.bin\\..\\vite\\bin\\vite.js" build',
    ),
    (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "PowerShell.EXE",
        '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoLogo -File C:\\Users\\{user}\\scripts\\backup-{name}.ps1',
    ),
    (
        "C:\\Windows\\System32\\cmd.exe",
        "Cmd.Exe",
        "C:\\Windows\\system32\\cmd.exe /c dir C:\\Users\\{user}\\Documents\\{name}",
    ),
    (
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
        "WinWord.exe",
        '"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" /n "C:\\Users\\{user}\\Documents\\{name}.docx" /o ""',
    ),
    (
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
        "Outlook.exe",
        '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE" /recycle',
    ),
    (
        "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe",
        "OneDrive.exe",
        '"C:\\Users\\{user}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe" /background',
    ),
    (
        "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
        "Wmiprvse.exe",
        "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
    ),
    (
        "C:\\Windows\\System32\\backgroundTaskHost.exe",
        "backgroundTaskHost.exe",
        '"C:\\Windows\\system32\\backgroundTaskHost.exe" -ServerName:App.AppXmtcan0h2tfbfy7k9kn8hbxb6dmzz1zh0.mca',
    ),
    (
        "C:\\Program Files\\7-Zip\\7z.exe",
        "7z.exe",
        '"C:\\Program Files\\7-Zip\\7z.exe" x C:\\Users\\{user}\\Downloads\\{name}.zip -oC:\\Users\\{user}\\Downloads\\{name}',
    ),
    ("C:\\Windows\\System32\\msiexec.exe", "msiexec.exe", "C:\\Windows\\system32\\msiexec.exe /V"),
    (
        "C:\\Windows\\System32\\notepad.exe",
        "NOTEPAD.EXE",
        '"C:\\Windows\\system32\\NOTEPAD.EXE" C:\\Users\\{user}\\Desktop\\{name}.txt',
    ),
]
PARENTS = [p[0] for p in PROGRAMS[:4]] + ["C:\\Windows\\System32\\services.exe", "C:\\Windows\\System32\\userinit.exe"]
USERS = ["alice", "bob", "carol", "dave", "svc_build"]
WORDS = ["report", "q3", "invoices", "notes", "deploy", "alpha", "beta", "release", "budget", "draft"]
SERVICES = ["netsvcs", "LocalServiceNetworkRestricted", "UnistackSvcGroup", "DcomLaunch", "appmodel"]


def _hash(text: str) -> str:
    md5 = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()
    sha = hashlib.sha256(text.encode()).hexdigest().upper()
    return f"MD5={md5},SHA256={sha},IMPHASH={md5[::-1]}"


def benign(rng: random.Random, i: int) -> dict:
    image, original, template = rng.choice(PROGRAMS)
    user = rng.choice(USERS)
    fill = {
        "user": user,
        "name": rng.choice(WORDS) + str(rng.randint(1, 999)),
        "svc": rng.choice(SERVICES),
        "n": rng.randint(1000, 99999),
        "hex": f"{rng.getrandbits(32):08x}",
        "guid": f"{rng.getrandbits(32):08X}-{rng.getrandbits(16):04X}-4{rng.getrandbits(12):03X}-8000-{rng.getrandbits(48):012X}",
    }
    image = image.format(**fill)
    parent = rng.choice(PARENTS)
    return {
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Provider_Name": "Microsoft-Windows-Sysmon",
        "Computer": f"ws{rng.randint(1, 40)}.corp.example",
        "UtcTime": f"2026-11-30 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{i % 1000:03d}",
        "ProcessGuid": "{" + fill["guid"] + "}",
        "ProcessId": rng.randint(100, 60000),
        "Image": image,
        "FileVersion": f"10.0.{rng.randint(17000, 26000)}.1",
        "Description": original.split(".")[0],
        "Product": "Microsoft® Windows® Operating System" if "Windows" in image else "Application",
        "Company": "Microsoft Corporation" if "Windows" in image or "Microsoft" in image else "Vendor Inc.",
        "OriginalFileName": original,
        "CommandLine": template.format(**fill),
        "CurrentDirectory": f"C:\\Users\\{user}\\",
        "User": f"CORP\\{user}",
        "LogonGuid": "{" + fill["guid"] + "}",
        "LogonId": hex(rng.getrandbits(24)),
        "TerminalSessionId": 1,
        "IntegrityLevel": rng.choice(["Medium", "Medium", "High", "System"]),
        "Hashes": _hash(image + str(rng.randint(0, 3))),
        "ParentProcessGuid": "{" + fill["guid"] + "}",
        "ParentProcessId": rng.randint(100, 60000),
        "ParentImage": parent,
        "ParentCommandLine": parent,
        "ParentUser": f"CORP\\{user}",
    }


def regression_samples(regression: Path) -> list[dict]:
    """Flat field maps of every Sysmon EventID 1 record in the SigmaHQ regression data."""
    out: list[dict] = []
    decoder = json.JSONDecoder()
    for path in sorted(regression.rglob("*.json")):
        text, i = path.read_text(encoding="utf-8"), 0
        while i < len(text):
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            record, i = decoder.raw_decode(text, i)
            event = record.get("Event", {})
            system = event.get("System", {})
            if system.get("EventID") != 1 or "Sysmon" not in str(system.get("Channel")):
                continue
            flat = {"EventID": 1, "Channel": system["Channel"], "Provider_Name": "Microsoft-Windows-Sysmon"}
            flat["Computer"] = system.get("Computer")
            flat.update({k: v for k, v in (event.get("EventData") or {}).items() if k != "#attributes"})
            out.append(flat)
    return out


def build(regression: Path, count: int, matching_share: float, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    attacks = regression_samples(regression)
    events = []
    for i in range(count):
        if attacks and rng.random() < matching_share:
            events.append(dict(attacks[i % len(attacks)]))
        else:
            events.append(benign(rng, i))
    return events


def to_record(flat: dict) -> dict:
    """The flat map back into the EVTX-JSON shape agentwatch's Windows codec reads."""
    system_keys = {"EventID", "Channel", "Provider_Name", "Computer"}
    return {
        "Event": {
            "System": {
                "EventID": flat["EventID"],
                "Channel": flat["Channel"],
                "Computer": flat.get("Computer"),
                "Provider": {"#attributes": {"Name": flat.get("Provider_Name")}},
            },
            "EventData": {k: v for k, v in flat.items() if k not in system_keys},
        }
    }
