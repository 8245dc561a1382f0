"""referee.report"""
