
ByJ8;NCCÆçEÄZC~¼k>ªÄq9-G43µýÄÄ¸