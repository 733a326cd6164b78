// BerthCLI: see ARCHITECTURE.md
