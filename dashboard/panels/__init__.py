"""The dashboard's panels: each module owns its layout (a function) and registers its callbacks."""
