#!/bin/sh
echo "$(cat /etc/greeting): sending the daily mail from $MAIL_FROM"
