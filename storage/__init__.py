"""Files written whole or not at all, and values made JSON-ready: the bottom layer every package
may use (it imports no other package of the project)."""
