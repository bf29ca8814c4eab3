"""Constants of the inner-LLM tests: an 8-layer tiny thinker with SEATS' test-vector layers (drops 4/5/6, late 7)."""

LAYERS = 8
SEATS_PARAMS = {"drop_layers": [4, 5, 6], "late_layer": 7}
PROMPTS = ["Describe it.", "What sound?"]
