"""A fake of VDSM's package, for the plug-in's tests (see ../README.md)."""
