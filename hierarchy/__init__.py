"""The hierarchy: meta-controller, domain specialists and instrument heads, and the decision
pipeline that turns their outputs into target weights for the simulator."""
