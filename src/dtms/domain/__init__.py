"""Domain types and pure rules shared by every layer; imports nothing of ours."""
