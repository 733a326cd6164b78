// BerthClient: see ARCHITECTURE.md
