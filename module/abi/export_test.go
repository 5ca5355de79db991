package abi

// LiveHandles counts the objects Envoy holds handles to.
func LiveHandles() (configs, routes, streams int) {
	return filterConfigs.len(), routeConfigs.len(), filters.len()
}
