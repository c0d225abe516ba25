
ByJBBCdD