"""The poster's use cases: post journals exactly once in effect, track the ERP's decisions."""
