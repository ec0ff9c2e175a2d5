"""Figures drawn from the tidy results CSV only: style, panel layout, the figures, the roofline (matplotlib)."""
