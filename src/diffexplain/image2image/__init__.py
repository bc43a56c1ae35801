"""Image-to-image attribution: I2AM maps and IMACS for reference-image models (Paint-by-Example)."""
