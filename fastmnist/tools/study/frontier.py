"""The accuracy-time frontier from sweep 7's runs: which runs are Pareto-optimal, and what each
trick buys per second it costs.

A run is the dict of :func:`fastmnist.tools.study.sweeps.sweep_recipes` (``epoch_seconds``,
``val_accuracy``, ``base``, ``trick``); its point is (training seconds, final test accuracy).
"""


def points(rec):
    """[(name, seconds, accuracy, on_front)] sorted by seconds: a run is on the front when no
    other run is at least as accurate in at most its time (and better in one of them)."""
    pts = [(name, float(sum(r["epoch_seconds"])), float(r["val_accuracy"][-1]))
           for name, r in rec.items()]
    out = []
    for name, s, a in pts:
        dominated = any((s2 <= s and a2 >= a) and (s2 < s or a2 > a)
                        for n2, s2, a2 in pts if n2 != name)
        out.append((name, s, a, not dominated))
    return sorted(out, key=lambda p: p[1])


#: an added time below this fraction of the recipe's own is within a single run's noise
NOISE = 0.1


def trick_gains(rec):
    """[(name, base, trick, accuracy points gained, seconds added, points per added second)]
    for every run that is a recipe with a trick switched on, against that recipe's own run
    (points per second None when the trick cost no measurable time: less than NOISE of the
    recipe's)."""
    out = []
    for name, r in rec.items():
        base = r.get("base", name)
        if base == name or base not in rec:
            continue
        b = rec[base]
        gain = 100 * (r["val_accuracy"][-1] - b["val_accuracy"][-1])
        cost = sum(r["epoch_seconds"]) - sum(b["epoch_seconds"])
        measurable = cost > NOISE * sum(b["epoch_seconds"])
        out.append((name, base, r["trick"], gain, cost, gain / cost if measurable else None))
    return out
