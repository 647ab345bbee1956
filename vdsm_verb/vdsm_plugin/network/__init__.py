"""Files for VDSM's ``vdsm/network`` package (not installed there: this file is ours)."""
