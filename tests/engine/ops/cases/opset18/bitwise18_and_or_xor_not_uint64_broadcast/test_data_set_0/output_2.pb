BxorJ`‡ŒWmDÔiq‰/ì
¦2:œ)²´Ëäš“pqÙoüOéX›ŽcUrzSùGÇùÜ0I¬·N‡$Ì"âi\Â÷]Jî«ˆ“ÓKg-7X=¶Ä×ÏPvg©"Ï¥…eÜûñ