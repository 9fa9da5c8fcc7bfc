"""Bookings of courts and rooms: units, slots, holds, quotas, check-in, waitlist, notifications."""
