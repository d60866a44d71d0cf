package certs

import "github.com/campus-saas/campus/internal/pebbletest"

type pebbleServer = pebbletest.Server

var startPebble = pebbletest.Start
