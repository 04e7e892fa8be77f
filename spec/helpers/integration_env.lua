-- busted helper for spec/integration: module paths for the specs and the harness.
package.path = "spec/helpers/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
