print("berth-bootloader")
