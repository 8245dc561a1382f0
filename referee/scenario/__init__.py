"""referee.scenario"""
