# The pixel kernels are Python-callable (def); nothing is cimported by other modules yet.
