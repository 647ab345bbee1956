"""Files for VDSM's ``vdsm/supervdsm_api`` package (this file is ours, not installed
there: the modules import VDSM's ``expose`` from it and run only inside supervdsmd)."""
