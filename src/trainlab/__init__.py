"""trainlab: reference implementations for 'Training neural networks, part I'.

One module per concept; import what you need, e.g.
``from trainlab.batchnorm import batchnorm_forward``.
"""

__version__ = "0.1.0"
