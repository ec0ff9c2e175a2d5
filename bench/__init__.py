"""Measuring 2-D local attention: sweeps, timing, results, figures and the regression gate."""
