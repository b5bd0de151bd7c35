"""A run's results on disk: JSON (every figure), a markdown table, and the README's
"latest results" section.

The JSON is the record; the markdown is rendered from the same dictionary, so a
table can always be re-rendered from an old JSON file (`render_markdown(json.load(f))`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.jobs import JOBS_BY_NAME

README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"
DASH = "—"


def format_value(value: float | None, unit: str) -> str:
    """Figures at a precision that says what the machine can tell apart."""
    if value is None:
        return DASH
    if unit == "s":
        return f"{value:.3f}"
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.1f}"


def format_ratio(ratio: float | None) -> str:
    return DASH if ratio is None else f"{ratio:.2f}x"


def _cell(summary_row: dict, server: str) -> str:
    value = summary_row.get("median", {}).get(server)
    text = format_value(value, summary_row["unit"])
    failed = summary_row.get("errors", {}).get(server)
    if failed:
        text += f" ({failed} failed)"
    return text


def results_table(summary: list[dict]) -> str:
    """The main table: medians per server and the ratio (> 1.0x: ours faster)."""
    lines = ["| job | unit | ours | Ganesha | local (psync) | ours vs Ganesha |",
             "|---|---|---:|---:|---:|---:|"]
    for row in summary:
        job = JOBS_BY_NAME.get(row["job"])
        title = job.title if job is not None else row["job"]
        if row["metric"] == "ls_s":
            title = "ls -l (READDIRPLUS) of the big directory"
        elif row["metric"] == "meta_ops_s":
            title = "create + stat + remove small files"
        unit = row["unit"] + ("" if row["higher_is_better"] else ", lower is better")
        lines.append(f"| {title} | {unit} | {_cell(row, 'ours')} | {_cell(row, 'ganesha')} | "
                     f"{_cell(row, 'local')} | {format_ratio(row.get('ratio_ours_vs_ganesha'))} |")
    return "\n".join(lines)


def cpu_table(rows: list[dict]) -> str:
    """Server CPU for the work of each job (medians), and how many times less ours
    used (> 1.0x: ours used less).  Less moved by a busy host than the wall times."""
    lines = ["| job | server CPU | ours | Ganesha | ours vs Ganesha |", "|---|---|---:|---:|---:|"]
    for row in rows:
        if not row.get("median"):
            continue
        job = JOBS_BY_NAME.get(row["job"])
        title = job.title if job is not None else row["job"]
        what = "per I/O, µs" if row["metric"] == "server_cpu_us_per_io" else "whole job, s"
        lines.append(f"| {title} | {what} | {_cell(row, 'ours')} | {_cell(row, 'ganesha')} | "
                     f"{format_ratio(row.get('ratio_ours_vs_ganesha'))} |")
    return "\n".join(lines)


def steal_table(runs: list[dict]) -> str:
    """The host's CPU steal (%) while each job ran, round by round, per server: a
    round with much steal measured the host's neighbours more than the server.
    Attempts measured again for their steal (see benchmarks.runner) follow the
    kept one in brackets."""
    by_job: dict[str, dict[str, list[str]]] = {}
    for run in runs:
        steal = (run.get("figures") or {}).get("host_steal_pct")
        if steal is not None:
            cell = f"{steal:.0f}"
            aside = [f"{d['host_steal_pct']:.0f}" for d in run.get("disturbed", ())
                     if d.get("host_steal_pct") is not None]
            if aside:
                cell += f" [{', '.join(aside)}]"
            by_job.setdefault(run["job"], {}).setdefault(run["server"], []).append(cell)
    servers = [s for s in ("ours", "ganesha", "local")
               if any(s in cells for cells in by_job.values())]
    names = {"ours": "ours", "ganesha": "Ganesha", "local": "local (psync)"}
    lines = ["| job | " + " | ".join(names[s] for s in servers) + " |",
             "|---|" + "---:|" * len(servers)]
    for job, cells in by_job.items():
        title = JOBS_BY_NAME[job].title if job in JOBS_BY_NAME else job
        lines.append(f"| {title} | " + " | ".join(" / ".join(cells.get(s, [DASH]))
                                                  for s in servers) + " |")
    return "\n".join(lines)


def steal_rule(doc: dict) -> str:
    """What the run did about steal, in a sentence (runs before the rule: nothing)."""
    limit = doc.get("steal_limit_pct")
    if limit is None:
        return ""
    again = sum(len(run.get("disturbed", ())) for run in doc.get("runs", []))
    return (f"A job measured while the steal passed {limit:g} % was measured again (at most "
            f"{doc.get('attempts')} times; the metadata job on a restarted server) and the "
            f"least disturbed attempt kept; the others are in brackets. Measured again: "
            f"{again} time(s) in this run.")


def _has_steal(doc: dict) -> bool:
    return any("host_steal_pct" in (run.get("figures") or {}) for run in doc.get("runs", []))


def _has_server_cpu(doc: dict) -> bool:
    """Whether the run measured any server CPU (runs before it was read had none)."""
    return any(row.get("median") for row in doc.get("server_cpu", []))


def targets_table(targets: list[dict]) -> str:
    lines = ["| target | measured | met |", "|---|---:|:---:|"]
    for target in targets:
        value = target["value"]
        text = target["target"]
        if value is None:
            shown = DASH
        elif "RSS" in text:
            shown = f"{value:.0f} MiB"
        elif "ls -l" in text:
            shown = f"{value:.3f} s"
        elif "%" in text:
            shown = f"{value * 100:.0f} %"
        else:
            shown = f"{value:.2f}x"
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(f"| {text} | {shown} | {met} |")
    return "\n".join(lines)


def render_markdown(doc: dict, chart_name: str | None = None) -> str:
    """The whole markdown report of one run."""
    machine, versions = doc["machine"], doc["versions"]
    parts = [f"# Benchmark run {doc['run_id']} ({doc['mode']})", "",
             f"{doc['rounds']} round(s), servers alternating each round (ours, then Ganesha); "
             "medians over the rounds. A ratio above 1.0x means ours is faster.", "",
             results_table(doc["summary"]), ""]
    if chart_name:
        parts += [f"![ours vs Ganesha vs local]({chart_name})", ""]
    if _has_server_cpu(doc):
        parts += ["## Server CPU", "",
                  "User and system CPU of each server's processes while the client ran the "
                  "job (psutil, before and after).", "", cpu_table(doc["server_cpu"]), ""]
    if _has_steal(doc):
        parts += ["## Host CPU steal", "",
                  "Percent of all CPU time the hypervisor gave to other guests while each "
                  "job ran, rounds in order (see benchmarks/host.py).", "",
                  steal_table(doc["runs"]), ""]
        rule = steal_rule(doc)
        if rule:
            parts += [rule, ""]
    parts += ["## Targets", "", targets_table(doc["targets"]), ""]
    rss = doc.get("rss_peak_mib", {})
    if rss:
        parts += ["Peak RSS of the largest process (MiB): " + ", ".join(
            f"{server} {value:.0f}" for server, value in sorted(rss.items())), ""]
    for server, peaks in sorted(rss_by_title(doc).items()):
        parts += [f"- {server}: " + ", ".join(f"`{title}` {mib:.0f} MiB"
                                              for title, mib in peaks.items())]
    if doc.get("rss_by_process"):
        parts += [""]
    parts += ["## Machine and versions", ""]
    parts += [f"- {key}: {value}" for key, value in machine.items()]
    parts += [f"- {key}: {value}" for key, value in versions.items()]
    parts += ["", "## Settings that differ from defaults", ""]
    for who, settings in doc["settings"].items():
        parts += [f"- {who}:"] + [f"  - {s}" for s in settings]
    failures = [r for r in doc["runs"] if "error" in r]
    if failures:
        parts += ["", "## Failed runs", ""]
        parts += [f"- round {r['round']}, {r['server']}, {r['job']}: {r['error']}" for r in failures]
        logs = doc.get("server_logs", {})
        if logs:
            parts += ["", "Server logs: " + ", ".join(f"{k} `{v}`" for k, v in sorted(logs.items()))]
    skipped = [r for r in doc["runs"] if "skipped" in r]
    if skipped:
        parts += ["", "## Skipped runs", ""]
        parts += [f"- round {r['round']}, {r['server']}, {r['job']}: {r['skipped']}" for r in skipped]
    return "\n".join(parts) + "\n"


def rss_by_title(doc: dict) -> dict[str, dict[str, float]]:
    """Each server's processes with their peak RSS over all rounds (titles merged)."""
    merged: dict[str, dict[str, float]] = {}
    for server, rounds in doc.get("rss_by_process", {}).items():
        peaks: dict[str, float] = {}
        for by_title in rounds.values():
            for title, mib in by_title.items():
                title = title.split(" [pid ")[0]
                peaks[title] = max(peaks.get(title, 0.0), mib)
        merged[server] = peaks
    return merged


def write_results(doc: dict, out_dir: Path, chart_path: Path | None) -> tuple[Path, Path]:
    """Write <run_id>.json and <run_id>.md into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{doc['run_id']}.json"
    md_path = out_dir / f"{doc['run_id']}.md"
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    md_path.write_text(render_markdown(doc, chart_path.name if chart_path else None))
    return json_path, md_path


def update_readme(readme: Path, doc: dict, md_rel: str, chart_rel: str | None) -> None:
    """Replace the README's latest-results section (between the markers) with this run."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_START} ... {README_END} section")
    body = [README_START, "",
            f"Run `{doc['run_id']}` ({doc['mode']}, {doc['rounds']} rounds, commit "
            f"{doc['versions'].get('commit', '?')}); full report: [{md_rel}]({md_rel}).", "",
            results_table(doc["summary"]), ""]
    if chart_rel:
        body += [f"![ours vs Ganesha vs local]({chart_rel})", ""]
    if _has_server_cpu(doc):
        body += ["Server CPU for the same work (> 1.0x: ours used less):", "",
                 cpu_table(doc["server_cpu"]), ""]
    body += [targets_table(doc["targets"]), "", README_END]
    readme.write_text(pattern.sub(lambda _m: "\n".join(body), text))
