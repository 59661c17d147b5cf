"""Numbers into words and tables: durations, ratios, comparisons, Markdown tables."""

#: below this ratio two timings are reported as "about the same" (a shared machine is noisy)
SAME = 1.10


def fmt_x(r):
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def compare(a_name, a_s, b_name, b_s):
    """A sentence comparing two durations: which is faster and by what factor."""
    if a_s <= 0 or b_s <= 0:
        return f"{a_name} and {b_name} could not be compared"
    r = b_s / a_s
    if 1 / SAME < r < SAME:
        return (f"{a_name} and {b_name} take about the same time ({fmt_s(a_s)} vs {fmt_s(b_s)}, "
                f"within {100 * (SAME - 1):.0f}%)")
    if r >= SAME:
        return f"{a_name} is {fmt_x(r)} faster than {b_name} ({fmt_s(a_s)} vs {fmt_s(b_s)})"
    return f"{a_name} is {fmt_x(1 / r)} slower than {b_name} ({fmt_s(a_s)} vs {fmt_s(b_s)})"


def fmt_s(sec):
    if sec >= 100:
        return f"{sec:.0f} s"
    if sec >= 1:
        return f"{sec:.2f} s"
    if sec >= 1e-3:
        return f"{1e3 * sec:.1f} ms"
    return f"{1e6 * sec:.1f} µs"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i else ":---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def timing_row(t, first):
    star = "*" if t.fraction else ""
    return [first, t.batch_size, f"{t.rows}{star}", f"{t.epoch_s:.3f}", f"{t.images_s:,.0f}",
            f"{t.gflops:.2f}", f"{t.pct_roof:.1f}", f"{t.spread:.0f}"]


TIMING_HEADER = ["contender", "batch", "rows/call", "epoch s", "images/s", "GFLOP/s",
                 "% roof", "spread %"]
