"""Every TA-Lib function as an engine indicator: batch calls TA-Lib itself,
streaming keeps its own O(1) state for the common indicators and recomputes
over a bounded window for the rest."""
