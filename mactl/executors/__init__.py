"""Where a stage's workers run when not as local processes: `kubernetes` (an Indexed Job).

An executor only starts, scales, watches and removes the workers. What they do, and how
they share the work, stays in the libraries (`mactl.backfill`: leases in the working-state
index), so a stage's result and its checks are the same whichever executor ran it.
"""
