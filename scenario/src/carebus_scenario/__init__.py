"""carebus scenario: a regional network's day, its oracle, the player, the demo."""
