"""Target tracking autoscaling with AWS's semantics: clocks, the pure engine, the simulator."""
