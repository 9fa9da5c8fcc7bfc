"""Resident base data for street offices (居民基础信息库): enter once, reuse, confidential."""
