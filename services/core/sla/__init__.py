"""SLA clocks: working-time deadlines over business hours, holidays and paused spans."""
