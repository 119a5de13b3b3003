"""Foundation shared by every group: the error types, the seed rule (SPEC §1), single-threaded
BLAS for small products, and project-relative paths.

Imports nothing from the project; Kedro-free, torch-free.
"""
