"""The program the platform starts for a Python function: ``python3.X -S
/var/runtime/bootstrap.py``. The runtime itself is ``alonzo_bootstrap``, imported from its
precompiled bytecode."""

import alonzo_bootstrap

alonzo_bootstrap.main()
