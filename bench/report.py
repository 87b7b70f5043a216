"""Assemble bench/results/LATEST.md (metric | vos3k | anchor | ratio | target | date | machine).

Sources, per benchmark: bench/results/NAME.json written by the benchmark itself
({"bench", "date", "machine", "figures": [{metric, vos3k, anchor, unit, target, note,
ratio}]}), else the figures parsed from its printed output, bench/results/NAME.log
(kept by run_all.py).  A benchmark with neither is listed as not run.  Every parsed
benchmark also gets bench/results/NAME.csv (metric, value, unit) so each has a raw CSV.
Run: .venv/bin/python bench/report.py   (run_all.py calls it at the end)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sip_harness import RESULTS, machine

Figure = dict


def fig(metric, vos3k, anchor="no anchor defined", unit="", target="printed", note="",
        ratio=None) -> Figure:  # fmt: skip
    return {"metric": metric, "vos3k": vos3k, "anchor": anchor, "unit": unit,
            "target": target, "note": note, "ratio": ratio}  # fmt: skip


def num(text: str) -> float:
    return float(text.replace(",", ""))


def _search(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text, re.M)


# ---------------------------------------------------------------- parsers of printed output
def parse_rating_lookup(text: str) -> list[Figure]:
    m = _search(r"([\d.]+) µs per lookup", text)
    n = _search(r"rate table: (\d+) prefixes", text)
    if not m:
        return []
    return [fig(f"Rating lookup, longest prefix of {n.group(1) if n else '?'} prefixes",
                num(m.group(1)), "no anchor defined", "µs", "< 5 µs (issue 7)")]  # fmt: skip


def parse_params_snapshot(text: str) -> list[Figure]:
    out = []
    for label, unit in (("take the call snapshot", "ns"), ("read by attribute", "ns"),
                        ("param set \\(db \\+ audit\\)", "us")):  # fmt: skip
        m = _search(rf"{label}\s+([\d.]+) {unit}", text)
        if m:
            name = label.replace("\\", "")
            out.append(fig(f"Params: {name}", num(m.group(1)), "no anchor defined",
                           "µs" if unit == "us" else unit))  # fmt: skip
    return out


def parse_sip_parse(text: str) -> list[Figure]:
    values = {}
    for line in text.splitlines():
        m = re.match(r"(\S.*?)\s{2,}([\d.]+) us$", line.strip())
        if m:
            values[m.group(1)] = num(m.group(2))
    base = values.get("stdlib email BytesHeaderParser")
    anchor = base if base is not None else "stdlib baseline missing"
    out = []
    for key, target in (("parse + serialise", "< 30 µs (issue 5)"), ("parse", "printed"),
                        ("transaction layer per message", "< 20 µs (issue 5)")):  # fmt: skip
        if key in values:
            ratio = round(values[key] / base, 2) if base and "transaction" not in key else None
            out.append(fig(f"SIP {key} (typical INVITE)", values[key],
                           anchor if "transaction" not in key else "no anchor defined", "µs",
                           target, "anchor: stdlib email.parser on the same bytes"
                           if "transaction" not in key else "", ratio))  # fmt: skip
    return out


def parse_cdr_writer(text: str) -> list[Figure]:
    m = _search(r"writer\+journal\+balances: ([\d,]+) CDRs in [\d.]+ s = ([\d,]+) CDR/s", text)
    p = _search(r"commit p50 ([\d.]+) ms, p99 ([\d.]+) ms", text)
    out = []
    if m:
        out.append(fig("CDR writer throughput with balances", num(m.group(2)),
                       "no anchor defined", "CDR/s", ">= 20,000 CDR/s (issue 7)",
                       f"{m.group(1)} CDRs, journal + hourly files"))  # fmt: skip
    if p:
        out.append(fig("CDR batch commit p99", num(p.group(2)), "no anchor defined", "ms",
                       "< 50 ms (issue 7)"))  # fmt: skip
    return out


def parse_rate_import(text: str) -> list[Figure]:
    m = _search(r"rate import: (\d+) rows in ([\d.]+) s = ([\d,]+) rows/s", text)
    if not m:
        return []
    return [fig(f"Rate import of {int(m.group(1)):,} rows", num(m.group(2)), "no anchor defined",
                "s", "< 60 s (issue 4)", f"{m.group(3)} rows/s")]  # fmt: skip


def parse_guard_flood(text: str) -> list[Figure]:
    out = []
    m = _search(r"flood, one IP.*?([\d,]+) checks/s \(([\d.]+) µs each\)", text)
    if m:
        out.append(fig("Pre-parse guard, one-IP flood", num(m.group(2)), "no anchor defined",
                       "µs/packet", "printed", f"{m.group(1)} checks/s"))  # fmt: skip
    m = _search(r"spread, 100,000 new IPs.*?([\d,]+) checks/s \(([\d.]+) µs each\)", text)
    if m:
        out.append(fig("Pre-parse guard, 100,000-IP spread (first packet)", num(m.group(2)),
                       "no anchor defined", "µs/packet", "printed"))  # fmt: skip
    return out


def parse_rtp(text: str) -> list[Figure]:
    v = _search(r"^vos3k:\s+(\d+) calls, (\d+) pps, ([\d.]+) us CPU/packet", text)
    r = _search(r"^rtpengine:\s+(\d+) calls, (\d+) pps, ([\d.]+) us CPU/packet", text)
    if not v:
        return []
    missing = "rtpengine not installed" if "NOT INSTALLED" in text else "rtpengine run failed"
    anchor_calls = int(r.group(1)) if r else missing
    anchor_cpu = num(r.group(3)) if r else missing
    note = "rtpengine userspace --table=-1; G.711 50 pps x 2 streams per call, < 1 % loss"
    if "generator was the limit" in text:
        note += "; load generator was the limit (lower bound)"
    return [
        fig("RTP relay: concurrent calls at < 1 % loss", int(v.group(1)), anchor_calls, "calls",
            ">= 0.3 x rtpengine (issue 8)", note,
            round(int(v.group(1)) / int(r.group(1)), 2) if r and int(r.group(1)) else None),
        fig("RTP relay: CPU per packet", num(v.group(3)), anchor_cpu, "µs/packet", "printed",
            note, round(num(v.group(3)) / num(r.group(3)), 2) if r else None),
    ]  # fmt: skip


def parse_flood(text: str) -> list[Figure]:
    out = []
    m = _search(r"flood: (\d+) INVITEs from \S+ in [\d.]+ s = ([\d,]+)/s", text)
    c = _search(r"call during flood: (completed|FAILED[^,]*)(?:, setup (\d+) ms)?", text)
    q = _search(r"call without flood: (completed|FAILED[^,]*)(?:, setup (\d+) ms)?", text)
    if c:
        note = f"flood {m.group(2)} INVITEs/s from one IP" if m else "flood rate not printed"
        out.append(fig("Legitimate call during INVITE flood", c.group(1), "no anchor defined",
                       "", "completes (issue 10)", note))  # fmt: skip
        if c.group(2):
            out.append(fig("Call setup time during flood", int(c.group(2)),
                           int(q.group(2)) if q and q.group(2) else "n/a", "ms", "printed",
                           "anchor: the same call without a flood",
                           round(int(c.group(2)) / int(q.group(2)), 2)
                           if q and q.group(2) and int(q.group(2)) else None))  # fmt: skip
    return out


PARSERS: dict[str, Callable[[str], list[Figure]]] = {
    "rating_lookup": parse_rating_lookup,
    "params_snapshot": parse_params_snapshot,
    "sip_parse": parse_sip_parse,
    "cdr_writer": parse_cdr_writer,
    "rate_import": parse_rate_import,
    "guard_flood": parse_guard_flood,
    "rtp": parse_rtp,
    "flood": parse_flood,
}
# The order of LATEST.md: the headline (anchored) figures first.
ORDER = ["sip_cps", "concurrency", "rtp", "cdr_writer", "rating_lookup", "sip_parse",
         "h225_codec", "rate_import", "flood", "guard_flood", "params_snapshot"]  # fmt: skip


def fmt(value) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def collect(names: list[str]) -> list[tuple[str, dict]]:
    """(bench, document) for every benchmark, from its JSON or else its parsed log.

    run_all.py deletes a benchmark's JSON and log before running it, so what is here is
    from the latest run of each."""
    docs = []
    for name in names:
        js, lg = RESULTS / f"{name}.json", RESULTS / f"{name}.log"
        doc = None
        if js.exists():
            try:
                doc = json.loads(js.read_text())
            except ValueError:
                doc = None
        if doc is None and lg.exists() and name in PARSERS:
            stamp = datetime.fromtimestamp(lg.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
            doc = {"bench": name, "date": stamp, "machine": machine(),
                   "figures": PARSERS[name](lg.read_text(errors="replace"))}  # fmt: skip
            rows = ["metric,value,unit"] + [
                f'"{f["metric"]}",{f["vos3k"]},{f["unit"]}' for f in doc["figures"]
            ]
            (RESULTS / f"{name}.csv").write_text("\n".join(rows) + "\n")
        if doc is None:
            doc = {"bench": name, "date": "", "machine": "", "figures": []}
        if not doc["figures"]:
            doc["figures"] = [fig(f"{name}: no figures", "not run or failed", "–", "", "",
                                  f"see bench/results/{name}.log")]  # fmt: skip
        docs.append((name, doc))
    return docs


def render(docs: list[tuple[str, dict]], run: dict | None) -> str:
    machines = list(dict.fromkeys(d["machine"] for _, d in docs if d["machine"])) or [machine()]
    label = {m: f"m{i}" for i, m in enumerate(machines, 1)}
    lines = [
        "# vos3k benchmarks: latest run",
        "",
        f"Written by `make bench` (bench/run_all.py, then bench/report.py) on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    if run:
        lines.append(f"Wall time of the whole run: {run.get('wall_s', 0) / 60:.1f} min; "
                     f"{run.get('ok', '?')} benchmarks ran, failed: "
                     f"{', '.join(run.get('failed', [])) or 'none'}.")  # fmt: skip
    lines += [
        "The machine is shared (other work may run alongside), so read single figures as",
        "+-10-20 %.  Ratio = vos3k / anchor: for rates and counts higher is better, for",
        "times and CPU lower is better.  Raw figures: bench/results/*.csv; output: *.log.",
        "",
        "| metric | vos3k | anchor | ratio | target | date | machine |",
        "|---|---|---|---|---|---|---|",
    ]
    for _name, doc in docs:
        for f in doc["figures"]:
            unit = f" {f['unit']}" if f.get("unit") else ""
            vos = f"{fmt(f['vos3k'])}{unit}" if f["vos3k"] not in ("", None) else "–"
            anchor = f["anchor"]
            anchor_txt = (f"{fmt(anchor)}{unit}" if isinstance(anchor, int | float)
                          else fmt(anchor))  # fmt: skip
            if f.get("note"):
                anchor_txt += f" ({f['note']})"
            lines.append(
                f"| {f['metric']} | {vos} | {anchor_txt} | {fmt(f.get('ratio'))} | "
                f"{f.get('target') or '–'} | {doc['date'] or '–'} | "
                f"{label.get(doc['machine'], 'm1')} |"
            )
    lines.append("")
    lines += [f"{label[m]}: {m}" for m in machines]
    return "\n".join(lines) + "\n"


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    run = None
    with_run = RESULTS / "run_all.json"
    if with_run.exists():
        try:
            run = json.loads(with_run.read_text())
        except ValueError:
            run = None
    names = list(ORDER)
    for path in sorted(RESULTS.glob("*.json")) + sorted(RESULTS.glob("*.log")):
        if path.stem not in names and path.stem not in ("run_all",):
            names.append(path.stem)
    docs = collect(names)
    text = render(docs, run)
    (RESULTS / "LATEST.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
