BfinalJ^n ?x
T¾ÛSû¿\a@¡¤„?ŽãÒ?