"""Helpers for checking the library against slow, literal implementations (tests and benchmarks).

Not imported by `import omnisift`: import the submodules directly (`omnisift.testing.reference`).
"""
