"""Summaries and output files of a run: results.csv, results.json, table.md,
gnuplot charts. Pure functions over the list of measurement rows, except the
writers, which create the files they are given.
"""

import csv
import json
import os
import statistics
import subprocess

from systems import PEERS
from util import GiB, MiB

CSV_FIELDS = ("run", "job", "system", "unit", "value", "wall_seconds",
              "user_bytes", "ops", "host_requests", "wire_bytes",
              "wire_bytes_per_user_byte", "host_requests_per_op",
              "disk_read_bytes", "disk_busy_seconds", "cpu_seconds",
              "daemon_cpu_seconds")
NA = "n/a"


def median_or_none(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def summarize(rows, jobs, systems):
    """One dict per job: medians per system, ratios, enclavefs figures."""
    summary = []
    for job in jobs:
        mine = [r for r in rows if r["job"] == job.name]
        if not mine:
            continue
        values = _median_per_system(mine, systems, lambda r: r.get("value"))
        efs = [r for r in mine if r["system"] == "enclavefs"]
        # Data jobs per GiB moved; the metadata jobs per run.
        cpu_per = "run" if job.family == "meta" else "GiB"
        summary.append({
            "job": job.name, "family": job.family, "unit": job.unit,
            "cold": job.cold, "values": values,
            "enclavefs_vs_best_peer": _ratio(job, values, PEERS),
            "enclavefs_vs_native": _ratio(job, values, ("native",)),
            # The median ratio can hide a run that lost: each run compares
            # the systems measured side by side in that rotation.
            "enclavefs_vs_best_peer_per_run": _per_run(job, mine, PEERS),
            "enclavefs_vs_native_per_run": _per_run(job, mine, ("native",)),
            "wire_bytes_per_user_byte": median_or_none(
                r.get("wire_bytes_per_user_byte") for r in efs),
            "host_requests_per_op": median_or_none(
                r.get("host_requests_per_op") for r in efs),
            "disk_read_mib": _median_per_system(mine, systems, _disk_read_mib),
            "disk_read_mib_per_busy_second": _median_per_system(
                mine, systems, _disk_read_rate),
            "cpu_per": cpu_per,
            "cpu": _median_per_system(
                mine, systems, _cpu_figure("cpu_seconds", cpu_per)),
            "daemon_cpu": _median_per_system(
                mine, systems, _cpu_figure("daemon_cpu_seconds", cpu_per)),
        })
    return summary


def _median_per_system(rows, systems, figure):
    """{system: median of figure(row) over its rows}; figure may be None."""
    return {s: median_or_none(figure(r) for r in rows if r["system"] == s)
            for s in systems}


def _disk_read_mib(row):
    return row["disk_read_bytes"] / MiB if "disk_read_bytes" in row else None


def _disk_read_rate(row):
    """MiB/s while the disk had I/O in flight."""
    busy = row.get("disk_busy_seconds")
    return row["disk_read_bytes"] / MiB / busy if busy else None


def _cpu_figure(field, per):
    """CPU-seconds per GiB the job read or wrote, or per run."""
    def figure(row):
        seconds = row.get(field)
        if seconds is None or per == "run":
            return seconds
        data = row.get("user_bytes")
        return seconds / (data / GiB) if data else None
    return figure


def _ratio(job, values, others):
    """>1 means enclavefs is better: rate ratio, or time ratio inverted."""
    mine = values.get("enclavefs")
    theirs = [values[s] for s in others if values.get(s)]
    if not mine or not theirs:
        return None
    if job.higher_is_better:
        return mine / max(theirs)
    return min(theirs) / mine


def _per_run(job, rows, others):
    """{run: ratio} over the runs that measured enclavefs and an other."""
    ratios = {}
    for run in sorted({r["run"] for r in rows}):
        values = {r["system"]: r.get("value") for r in rows
                  if r["run"] == run}
        ratio = _ratio(job, values, others)
        if ratio is not None:
            ratios[run] = ratio
    return ratios


def fmt_value(unit, value):
    if value is None:
        return NA
    if unit == "IOPS":
        return f"{value / 1000:.1f}k" if value >= 10000 else f"{value:.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_ratio(value):
    return NA if value is None else f"{value:.2f}"


def fmt_per_run(ratios, runs):
    """Runs 1..runs in order; n/a where a run has no ratio."""
    return " / ".join(fmt_ratio(ratios.get(r)) for r in range(1, runs + 1))


def fmt_figure(value):
    # Design figures span 0.0001 (buffered writes) to 10+ (metadata).
    return NA if value is None else f"{value:.3g}"


def even_in_every_run(summary, runs):
    """(jobs where enclavefs reached >= 1.0x the best peer in each of the
    runs, jobs in the summary)."""
    even = sum(
        len(r) == runs and min(r.values()) >= 1.0
        for r in (s["enclavefs_vs_best_peer_per_run"] for s in summary))
    return even, len(summary)


def table_markdown(summary, systems, runs):
    per_run = runs > 1
    header = ["job", "unit", *systems, "enclavefs/best-peer",
              "enclavefs/native"]
    if per_run:
        header += ["vs best peer, per run", "vs native, per run"]
    header += ["efs wire B/user B", "efs host req/op"]
    lines = [
        f"Median of {runs} run(s). seq jobs: MiB/s, random jobs: IOPS "
        "(higher is better); metadata jobs: seconds (lower is better).",
        "Ratios: enclavefs/X for MiB/s and IOPS, X_time/enclavefs_time for "
        "seconds, so >1 always means EnclaveFS is better. best-peer = best "
        "of gocryptfs, securefs, cryfs.",
        "",
    ]
    if per_run:
        even, jobs = even_in_every_run(summary, runs)
        lines += [
            "Per run: the same ratios within each rotation of the systems, "
            f"runs 1 to {runs}. EnclaveFS reached >= 1.0x the best peer in "
            f"all {runs} runs on {even} of {jobs} jobs.",
            "",
        ]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for s in summary:
        cells = [s["job"], s["unit"],
                 *(fmt_value(s["unit"], s["values"][n]) for n in systems),
                 fmt_ratio(s["enclavefs_vs_best_peer"]),
                 fmt_ratio(s["enclavefs_vs_native"])]
        if per_run:
            cells += [fmt_per_run(s["enclavefs_vs_best_peer_per_run"], runs),
                      fmt_per_run(s["enclavefs_vs_native_per_run"], runs)]
        cells += [fmt_figure(s["wire_bytes_per_user_byte"]),
                  fmt_figure(s["host_requests_per_op"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def disk_table_markdown(summary, systems):
    """What the work dir's disk read during the cold jobs; "" if no job
    recorded it. Fewer MiB than the data means part of the read came from a
    cache the page cache drop did not empty; the MiB/s show how fast the
    disk itself served each system."""
    cold = [s for s in summary if s["cold"]
            and any(v is not None for v in s["disk_read_mib"].values())]
    if not cold:
        return ""
    return _pair_table(
        "Disk reads during the cold jobs (medians): MiB the work dir's block "
        "device read while the job ran / MiB/s over the time it had I/O in "
        "flight.", cold, systems, ("disk_read_mib",
                                   "disk_read_mib_per_busy_second"), ".0f")


def cpu_table_markdown(summary, systems):
    """CPU-seconds per GiB (per run of a metadata job), whole machine / the
    system's own processes; "" if no job recorded it."""
    rows = [s for s in summary
            if any(v is not None for v in s["cpu"].values())]
    if not rows:
        return ""
    return _pair_table(
        "CPU during the timed phase (medians), in CPU-seconds per GiB read "
        "or written, or per run of a metadata job: the whole machine / "
        "the system's own processes (FUSE daemon; for EnclaveFS also the "
        "host). The machine's figure includes the workload (fio, cp) and "
        "the kernel's work for it.", rows, systems, ("cpu", "daemon_cpu"),
        ".2f", per_column="cpu_per")


def _pair_table(caption, rows, systems, keys, fmt, per_column=None):
    """A table of "first / second" per system and summary row, the two
    figures being the summary's keys; n/a where one is missing. per_column
    names a summary key shown as a "per" column after the job."""
    first, second = keys
    lead = ["job"] + (["per"] if per_column else [])
    lines = [caption, "",
             "| " + " | ".join(lead + list(systems)) + " |",
             "|" + "---|" * len(lead) + "---:|" * len(systems)]
    for s in rows:
        cells = [s["job"]] + ([s[per_column]] if per_column else [])
        for n in systems:
            a, b = s[first][n], s[second][n]
            cells.append(NA if a is None else f"{a:{fmt}} / "
                         + (NA if b is None else f"{b:{fmt}}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        # Unix line ends: the csv module's default is CRLF.
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS,
                                extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: NA if row.get(k) is None else row[k]
                             for k in CSV_FIELDS})


def write_json(path, document):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=False)
        f.write("\n")


def _gnuplot(script, cwd):
    proc = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {proc.stderr.strip()}")


def _histogram_script(data_file, png, title, ylabel, ncols, log_base):
    return "\n".join([
        "set terminal pngcairo size 1000,520 font ',10'",
        f"set output '{png}'",
        f"set title '{title}'",
        f"set ylabel '{ylabel}'",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set datafile missing '?'",
        "set key outside right top",
        "set grid ytics",
        "set xtics rotate by -20",
        f"set logscale y {log_base}",
        f"plot for [i=2:{ncols + 1}] '{data_file}' using i:xtic(1) "
        "title columnheader(i)",
        "",
    ])


def _write_data(path, names, summary_rows, columns):
    with open(path, "w", encoding="utf-8") as f:
        f.write("job " + " ".join(names) + "\n")
        for s in summary_rows:
            cells = [c(s) for c in columns]
            f.write(s["job"] + " " + " ".join(
                "?" if v is None else f"{v:.6g}" for v in cells) + "\n")


def write_charts(out_dir, summary, systems):
    """One grouped bar chart per job family plus one of the ratios; returns
    the PNG file names written into out_dir."""
    written = []
    families = (("seq", "Sequential throughput", "MiB/s (higher is better)"),
                ("rand", "4 KiB random I/O", "IOPS (higher is better)"),
                ("meta", "Metadata workloads", "seconds (lower is better)"))
    for family, title, ylabel in families:
        rows = [s for s in summary if s["family"] == family]
        if not rows:
            continue
        data = f"{family}.dat"
        _write_data(os.path.join(out_dir, data), systems, rows,
                    [lambda s, n=n: s["values"][n] for n in systems])
        png = f"{family}.png"
        # Native is often 10-100x the FUSE systems: log scale keeps all
        # bars readable.
        _gnuplot(_histogram_script(data, png, title, ylabel, len(systems),
                                   log_base=10), out_dir)
        written.append(png)
    if "enclavefs" in systems and len(systems) > 1:
        _write_data(os.path.join(out_dir, "ratios.dat"),
                    ["enclavefs/best-peer", "enclavefs/native"], summary,
                    [lambda s: s["enclavefs_vs_best_peer"],
                     lambda s: s["enclavefs_vs_native"]])
        # Ratios are multiplicative: a log axis shows 0.5 and 2 alike.
        script = _histogram_script(
            "ratios.dat", "ratios.png", "EnclaveFS relative to others",
            "ratio (>1: EnclaveFS better)", 2, log_base=2)
        _gnuplot(script.replace("plot for", "set arrow from graph 0, first 1"
                                " to graph 1, first 1 nohead dt 2\nplot for"),
                 out_dir)
        written.append("ratios.png")
    return written
