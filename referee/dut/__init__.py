"""referee.dut"""
