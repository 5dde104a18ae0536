"""An interactive course on lightweight CNN backbones.

The notebooks narrate; this package computes. Chapters import from here:
``blocks`` (the papers' building blocks), ``models`` (whole networks),
``measure`` (params, FLOPs, MAC, latency) and ``env`` (quick mode, device, seeds).
"""

__version__ = "0.1.0"
