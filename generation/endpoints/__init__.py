"""How model servers come to life (the embedded llama.cpp server for local runs)."""
