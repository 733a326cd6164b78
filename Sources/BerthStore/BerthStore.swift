// BerthStore: see ARCHITECTURE.md
