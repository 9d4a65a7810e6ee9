"""Elastic structure: which sub-network trains now, and which one ships."""
