// BerthBoot: see ARCHITECTURE.md
