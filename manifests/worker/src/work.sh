#!/bin/sh
while true; do echo "polling $COPILOT_QUEUE_URI (batch $BATCH_SIZE)"; sleep 20; done
