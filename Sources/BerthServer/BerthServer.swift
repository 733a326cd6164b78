// BerthServer: see ARCHITECTURE.md
