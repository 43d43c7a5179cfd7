"""Business logic. Functions take keyword-only arguments and an AsyncSession they do not own."""
