"""Switch kind ``none``: the switch is in the plan (for port maps), but kvpod configures nothing on it."""
