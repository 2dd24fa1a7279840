"""Stage steps: one function per step, taking a composed config and returning its artifact."""
