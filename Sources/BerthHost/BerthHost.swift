// BerthHost: see ARCHITECTURE.md
