/* routes.h -- the one route table of the server (api/routes.c). */
#ifndef REEL_API_ROUTES_H
#define REEL_API_ROUTES_H

#include "api/core/core.h"

extern const api_route_t api__routes[];
extern const size_t api__n_routes;

#endif
